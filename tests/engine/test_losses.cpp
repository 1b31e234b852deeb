// The losses of issue 10 (class-probability cross_entropy, huber, poisson_nll, kl_div, the
// margin / embedding losses): built through the loss registry and compared with PyTorch fixtures
// (tests/fixtures/gen_losses.py) in float32 and float64, float64 gradient checks, argument errors,
// and every registered loss on the inputs its roles and ClassTarget describe.
#include <catch2/catch.hpp>
#include <cmath>
#include <set>
#include <sstream>

#include "engine/nn/loss_registry.h"
#include "engine/ops.h"
#include "tests/support/ctc_inputs.h"
#include "tests/support/fixtures.h"
#include "tests/support/gradcheck.h"

using namespace dl;
using dl::nn::ClassTarget;
using dl::nn::LossDef;
using dl::test::FixtureCase;

namespace {

// The fixture's option attributes as the registry's typed values (by the schema's kind).
AttrMap options_of(const FixtureCase& c, const LossDef& def) {
  AttrMap m;
  for (const auto& [key, text] : c.attrs) {
    if (key == "op") continue;
    const AttrSchema* s = find_attr(def.attrs, key);
    REQUIRE(s != nullptr);
    switch (s->kind) {
      case AttrKind::Bool: m[key] = text == "1"; break;
      case AttrKind::Int: m[key] = c.attr_i(key); break;
      case AttrKind::Float: m[key] = c.attr_f(key); break;
      case AttrKind::String: m[key] = text; break;
      case AttrKind::FloatList: {
        std::istringstream in(text);
        std::vector<double> v;
        for (double d; in >> d;) v.push_back(d);
        m[key] = v;
        break;
      }
      default: FAIL("option " << key << " of an unexpected kind");
    }
  }
  return m;
}

void check_fixture_case(const FixtureCase& c, double rtol, double atol) {
  INFO("case " << c.name);
  const LossDef& def = nn::loss_def(c.attr("op"));
  nn::LossFn loss = nn::make_loss(def.name, options_of(c, def));
  std::vector<Tensor> args;
  for (const std::string& role : def.inputs) {
    Tensor a = c.t(role).clone();
    if (c.has("grad_" + role)) a.requires_grad_();
    args.push_back(a);
  }
  Tensor y = loss(args);
  CHECK_CLOSE(y, c.t("y"), rtol, atol);
  REQUIRE(y.requires_grad());
  y.backward(c.t("gout"));
  for (size_t k = 0; k < def.inputs.size(); ++k) {
    const std::string key = "grad_" + def.inputs[k];
    if (!c.has(key)) continue;
    INFO("gradient of " << def.inputs[k]);
    Tensor g = args[k].grad().defined() ? args[k].grad() : zeros_like(args[k]);
    CHECK_CLOSE(g, c.t(key), rtol, atol);
  }
}

Tensor f64(const Shape& s, Generator& gen, double scale = 1.0, double shift = 0.0) {
  NoGradGuard ng;
  return add(mul(randn(s, gen, DType::F64), scale), shift).detach().requires_grad_();
}

Tensor signs64(const std::vector<double>& v) { return from_vector(v, {static_cast<int64_t>(v.size())}); }

constexpr Reduction kReductions[] = {Reduction::None, Reduction::Mean, Reduction::Sum};

}  // namespace

TEST_CASE("losses match PyTorch through the registry (float32 and float64)", "[loss][fixtures]") {
  auto cases32 = dl::test::load_fixtures("losses.txt");
  auto cases64 = dl::test::load_fixtures("losses_f64.txt");
  REQUIRE(cases32.size() > 100);
  REQUIRE(cases64.size() == cases32.size());
  for (const auto& c : cases32) check_fixture_case(c, 1e-5, 1e-6);
  for (const auto& c : cases64) check_fixture_case(c, 1e-10, 1e-12);
}

TEST_CASE("the fixtures cover every loss registered beyond loss.txt's seven", "[loss][fixtures]") {
  std::set<std::string> covered;
  for (const auto& c : dl::test::load_fixtures("losses.txt")) covered.insert(c.attr("op"));
  for (const auto& c : dl::test::load_fixtures("loss.txt")) covered.insert(c.attr("op"));
  for (const auto& c : dl::test::load_fixtures("ctc.txt")) covered.insert(c.attr("op"));
  for (const LossDef& d : nn::loss_defs()) CHECK(covered.count(d.name) == 1);
}

TEST_CASE("new losses pass float64 gradcheck", "[loss][gradcheck]") {
  Generator gen(21);
  using TL = TensorList;
  SECTION("cross_entropy with class probabilities") {
    Tensor x = f64({3, 4}, gen), t = f64({3, 4}, gen, 0.3, 0.5);
    Tensor x4 = f64({2, 3, 2, 2}, gen), t4 = f64({2, 3, 2, 2}, gen, 0.3, 0.5);
    Tensor w = from_vector<double>({0.5, 1.5, 1.0, 2.0}, {4});
    for (Reduction r : kReductions)
      for (double ls : {0.0, 0.3}) {
        REQUIRE_GRADCHECK([&](const TL& in) { return cross_entropy(in[0], in[1], w, -100, r, ls); }, (TL{x, t}));
        REQUIRE_GRADCHECK([&](const TL& in) {
          return cross_entropy(in[0], in[1], w.narrow(0, 0, 3), -100, r, ls);
        }, (TL{x4, t4}));
      }
  }
  SECTION("huber, poisson_nll, kl_div") {
    Tensor a = f64({3, 4}, gen), b = f64({3, 4}, gen);
    Tensor rate = f64({3, 4}, gen, 0.2, 1.5), cnt = f64({3, 4}, gen, 1.0, 2.5);
    Tensor lp, q;
    {
      NoGradGuard ng;
      lp = log_softmax(randn({3, 4}, gen, DType::F64), 1).detach().requires_grad_();
      q = softmax(randn({3, 4}, gen, DType::F64), 1).detach().requires_grad_();
    }
    for (Reduction r : kReductions) {
      for (double delta : {1.0, 0.4})
        REQUIRE_GRADCHECK(([r, delta](const TL& in) { return huber_loss(in[0], in[1], r, delta); }), (TL{a, b}));
      for (bool full : {false, true}) {
        REQUIRE_GRADCHECK(([r, full](const TL& in) { return poisson_nll_loss(in[0], in[1], true, full, 1e-8, r); }),
                          (TL{a, cnt}));
        REQUIRE_GRADCHECK(([r, full](const TL& in) { return poisson_nll_loss(in[0], in[1], false, full, 1e-8, r); }),
                          (TL{rate, cnt}));
      }
    }
    for (const char* r : {"none", "mean", "sum", "batchmean"}) {
      REQUIRE_GRADCHECK([r](const TL& in) { return kl_div(in[0], in[1], r, false); }, (TL{lp, q}));
      REQUIRE_GRADCHECK([r](const TL& in) { return kl_div(in[0], in[1], r, true); }, (TL{lp, lp}));
    }
  }
  SECTION("margin, hinge and soft-margin losses") {
    Tensor x1 = f64({6}, gen), x2 = f64({6}, gen), y = signs64({1, -1, 1, -1, -1, 1});
    Tensor x = f64({3, 4}, gen, 2.0), ys = from_vector<double>({1, -1, -1, 1, 1, 1, -1, -1, 1, -1, 1, -1}, {3, 4});
    Tensor soft = f64({3, 4}, gen, 0.2, 0.5);
    Tensor w = from_vector<double>({0.5, 1.5, 1.0, 2.0}, {4});
    for (Reduction r : kReductions) {
      for (double m : {0.0, 0.7})
        REQUIRE_GRADCHECK(([&, r, m](const TL& in) { return margin_ranking_loss(in[0], in[1], y, m, r); }),
                          (TL{x1, x2}));
      REQUIRE_GRADCHECK(([&, r](const TL& in) { return hinge_embedding_loss(in[0], ys, 1.5, r); }), (TL{x}));
      REQUIRE_GRADCHECK(([&, r](const TL& in) { return soft_margin_loss(in[0], ys, r); }), (TL{x}));
      REQUIRE_GRADCHECK(([&, r](const TL& in) { return multilabel_soft_margin_loss(in[0], in[1], w, r); }),
                        (TL{x, soft}));
      REQUIRE_GRADCHECK(([&, r](const TL& in) { return multilabel_soft_margin_loss(in[0], in[1], Tensor(), r); }),
                        (TL{x, soft}));
    }
  }
  SECTION("class-index margin losses") {
    Tensor x = f64({4, 5}, gen);
    Tensor t = from_vector<int64_t>({4, 0, 2, 3}, {4});
    Tensor mt = from_vector<int64_t>({3, 0, -1, 1, 2, 1, 2, 3, 4, 0, -1, 1, 2, 0, 0, 4, -1, -1, -1, -1}, {4, 5});
    Tensor w = from_vector<double>({0.5, 1.5, 1.0, 2.0, 0.7}, {5});
    for (Reduction r : kReductions) {
      REQUIRE_GRADCHECK(([&, r](const TL& in) { return multilabel_margin_loss(in[0], mt, r); }), (TL{x}));
      for (int64_t p : {1, 2}) {
        REQUIRE_GRADCHECK(([&, r, p](const TL& in) { return multi_margin_loss(in[0], t, p, 1.0, w, r); }), (TL{x}));
        REQUIRE_GRADCHECK(([&, r, p](const TL& in) { return multi_margin_loss(in[0], t, p, 0.4, Tensor(), r); }),
                          (TL{x}));
      }
    }
  }
  SECTION("embedding losses") {
    Tensor a = f64({4, 3}, gen), p = f64({4, 3}, gen), n = f64({4, 3}, gen);
    Tensor y = signs64({1, -1, -1, 1});
    for (Reduction r : kReductions) {
      for (double m : {0.0, -0.3, 0.2})
        REQUIRE_GRADCHECK(([&, r, m](const TL& in) { return cosine_embedding_loss(in[0], in[1], y, m, r); }),
                          (TL{a, p}));
      for (double pn : {2.0, 1.0, 3.0})
        for (bool swap : {false, true})
          REQUIRE_GRADCHECK(([r, pn, swap](const TL& in) {
            return triplet_margin_loss(in[0], in[1], in[2], 2.0, pn, 1e-6, swap, r);
          }), (TL{a, p, n}));
    }
  }
}

TEST_CASE("cross_entropy with one-hot probabilities equals cross_entropy with class indices", "[loss]") {
  Generator gen(5);
  Tensor x = randn({6, 4}, gen);
  Tensor idx = from_vector<int64_t>({0, 3, 1, 1, 2, 0}, {6});
  Tensor probs = one_hot(idx, 4);
  for (Reduction r : kReductions)
    for (double ls : {0.0, 0.2}) {
      Tensor xi = x.clone().requires_grad_(), xp = x.clone().requires_grad_();
      Tensor a = cross_entropy(xi, idx, Tensor(), -100, r, ls), b = cross_entropy(xp, probs, Tensor(), -100, r, ls);
      CHECK_CLOSE(b, a, 1e-6, 1e-7);
      sum(a).backward();
      sum(b).backward();
      CHECK_CLOSE(xp.grad(), xi.grad(), 1e-6, 1e-7);
    }
  // Empty batches: mean is NaN, sum 0, none empty (PyTorch).
  CHECK(std::isnan(cross_entropy(zeros({0, 4}), zeros({0, 4})).item()));
  CHECK(cross_entropy(zeros({0, 4}), zeros({0, 4}), Tensor(), -100, Reduction::Sum).item() == 0.0);
  CHECK(cross_entropy(zeros({0, 4}), zeros({0, 4}), Tensor(), -100, Reduction::None).shape() == Shape{0});
}

TEST_CASE("new losses reject bad arguments naming the loss and the shapes", "[loss]") {
  Tensor x = zeros({3, 4});
  // cross_entropy with probabilities
  CHECK_THROWS_WITH(cross_entropy(x, zeros({3, 5})), Catch::Contains("cross_entropy") && Catch::Contains("[3, 5]") &&
                                                         Catch::Contains("[3, 4]"));
  CHECK_THROWS_WITH(cross_entropy(x, zeros({3, 4}), Tensor(), 1), Catch::Contains("ignore_index"));
  CHECK_THROWS_WITH(cross_entropy(x, zeros({3, 4}), ones({5})), Catch::Contains("all 4 classes"));
  // broadcasting / shapes
  CHECK_THROWS_WITH(poisson_nll_loss(x, zeros({3})), Catch::Contains("poisson_nll_loss") && Catch::Contains("[3, 4]") &&
                                                         Catch::Contains("[3]"));
  CHECK_THROWS_WITH(kl_div(x, zeros({2, 4})), Catch::Contains("kl_div") && Catch::Contains("[2, 4]"));
  CHECK_THROWS_WITH(kl_div(x, zeros({3, 4}), "avg"), Catch::Contains("'avg'") && Catch::Contains("batchmean"));
  CHECK_THROWS_WITH(huber_loss(x, zeros({2})), Catch::Contains("[3, 4]") && Catch::Contains("[2]"));
  CHECK_THROWS_WITH(huber_loss(x, x, Reduction::Mean, 0.0), Catch::Contains("huber_loss") && Catch::Contains("delta"));
  CHECK_THROWS_WITH(soft_margin_loss(x, zeros({5})), Catch::Contains("soft_margin_loss"));
  CHECK_THROWS_WITH(margin_ranking_loss(zeros({3}), zeros({3}), zeros({3, 1})),
                    Catch::Contains("margin_ranking_loss") && Catch::Contains("[3, 1]"));
  CHECK_THROWS_WITH(hinge_embedding_loss(x, zeros({2})), Catch::Contains("hinge_embedding_loss"));
  CHECK_THROWS_WITH(multilabel_soft_margin_loss(x, zeros({3, 4}), ones({3})),
                    Catch::Contains("multilabel_soft_margin_loss") && Catch::Contains("[3]"));
  CHECK_THROWS_WITH(cosine_embedding_loss(x, x, zeros({3, 4})), Catch::Contains("multi-target"));
  CHECK_THROWS_WITH(cosine_embedding_loss(zeros({4}), zeros({4}), zeros({4})),
                    Catch::Contains("cosine_embedding_loss") && Catch::Contains("[4]"));
  CHECK_THROWS_WITH(triplet_margin_loss(x, zeros({4}), x),
                    Catch::Contains("triplet_margin_loss") && Catch::Contains("[4]"));
  CHECK_THROWS_WITH(triplet_margin_loss(x, zeros({2, 4}), x), Catch::Contains("[2, 4]"));
  CHECK_THROWS_WITH(triplet_margin_loss(x, x, x, 1.0, 0.0), Catch::Contains("p must be"));
  CHECK_THROWS_WITH(triplet_margin_loss(x, x, x, 1.0, INFINITY), Catch::Contains("p must be"));
  // class-index margin losses
  Tensor t = from_vector<int64_t>({0, 3, 1}, {3});
  CHECK_THROWS_WITH(multi_margin_loss(x, t, 3), Catch::Contains("p == 1 and p == 2"));
  CHECK_THROWS_AS(multi_margin_loss(x, from_vector<int64_t>({0, 4, 1}, {3})), std::out_of_range);
  CHECK_THROWS_WITH(multi_margin_loss(x, from_vector<int64_t>({0, 4, 1}, {3})), Catch::Contains("target 4"));
  CHECK_THROWS_WITH(multi_margin_loss(x, from_vector<int64_t>({0, 1}, {2})), Catch::Contains("[2]"));
  CHECK_THROWS_WITH(multi_margin_loss(x, t, 1, 1.0, ones({3})), Catch::Contains("weight"));
  CHECK_THROWS_WITH(multi_margin_loss(x, zeros({3})), Catch::Contains("int64"));
  CHECK_THROWS_WITH(multilabel_margin_loss(x, zeros({3, 3}, DType::I64)), Catch::Contains("[3, 3]"));
  CHECK_THROWS_AS(multilabel_margin_loss(x, full({3, 4}, 4, DType::I64)), std::out_of_range);
  CHECK_THROWS_WITH(multilabel_margin_loss(zeros({2, 0}), zeros({2, 0}, DType::I64)), Catch::Contains("non-empty"));
  // Entries after a row's first -1 are not read (PyTorch), even when out of range.
  CHECK(std::isfinite(multilabel_margin_loss(x, full({3, 4}, -1, DType::I64)).item()));
  CHECK(std::isfinite(
      multilabel_margin_loss(zeros({4}), from_vector<int64_t>({1, -1, 9, 9}, {4})).item()));
  // Registry options are checked against the schema.
  CHECK_THROWS_WITH(nn::make_loss("multi_margin_loss", {{"p", int64_t{3}}}), Catch::Contains("p"));
  CHECK_THROWS_WITH(nn::make_loss("huber_loss", {{"delta", 0.0}}), Catch::Contains("delta"));
  CHECK_THROWS_WITH(nn::make_loss("kl_div", {{"reduction", std::string("avg")}}), Catch::Contains("batchmean"));
  CHECK_NOTHROW(nn::make_loss("kl_div", {{"reduction", std::string("batchmean")}}));
  CHECK_THROWS_WITH(nn::make_loss("mse_loss", {{"reduction", std::string("batchmean")}}), Catch::Contains("reduction"));
}

TEST_CASE("every registered loss trains on the inputs its roles and ClassTarget describe", "[loss][registry]") {
  constexpr int64_t kN = 4, kC = 5;
  const std::vector<int64_t> labels = {2, 0, 4, 1};
  Generator gen(9);
  for (const LossDef& def : nn::loss_defs()) {
    INFO("loss " << def.name);
    nn::LossFn loss = nn::make_loss(def.name, {});
    std::vector<Tensor> args, outputs;
    for (const std::string& role : def.inputs) {
      if (Tensor t = dl::test::ctc_role_arg(role, kN, kC, gen); t.defined()) {  // ctc_loss's sequence roles
        if (t.requires_grad()) outputs.push_back(t);
        args.push_back(t);
        continue;
      }
      if (role != "target") {  // a model output: probabilities in (0.1, 0.9) suit every loss
        Tensor o = add(mul(rand({kN, kC}, gen), 0.8), 0.1).requires_grad_();
        outputs.push_back(o);
        args.push_back(o);
        continue;
      }
      Tensor idx = from_vector(labels, {kN});
      switch (def.class_target) {
        case ClassTarget::index: args.push_back(idx); break;
        case ClassTarget::one_hot: args.push_back(one_hot(idx, kC)); break;
        case ClassTarget::signed_one_hot: args.push_back(add(mul(one_hot(idx, kC), 2.0), -1.0)); break;
        case ClassTarget::multilabel_index: {
          std::vector<int64_t> v(static_cast<size_t>(kN * kC), -1);
          for (int64_t n = 0; n < kN; ++n) v[static_cast<size_t>(n * kC)] = labels[static_cast<size_t>(n)];
          args.push_back(from_vector(v, {kN, kC}));
          break;
        }
        case ClassTarget::none:  // +1/-1 pair labels: per element (ranking) or per row (cosine)
          args.push_back(def.name == "cosine_embedding_loss" ? signs64({1, -1, 1, -1}).to(DType::F32)
                                                             : add(mul(one_hot(idx, kC), 2.0), -1.0));
          break;
      }
    }
    Tensor y = loss(args);
    CHECK(y.dim() == 0);
    CHECK(std::isfinite(y.item()));
    y.backward();
    for (const Tensor& o : outputs) {
      REQUIRE(o.grad().defined());
      CHECK(o.grad().shape() == o.shape());
      CHECK(isfinite_all(o.grad()));
      CHECK(max(abs(o.grad())).item() > 0);
    }
  }
}

TEST_CASE("registered losses apply weight lists at the input's precision", "[loss][registry]") {
  // 0.1 and 0.3 are not float32 numbers: a float64 loss must see the float64 values.
  Generator gen(4);
  Tensor x = randn({3, 2}, gen, DType::F64);
  Tensor t = from_vector<int64_t>({0, 1, 1}, {3});
  Tensor w = from_vector<double>({0.1, 0.3}, {2});
  nn::LossFn loss = nn::make_loss("cross_entropy", {{"weight", std::vector<double>{0.1, 0.3}},
                                                    {"reduction", std::string("sum")}});
  CHECK(loss({x, t}).item() == cross_entropy(x, t, w, -100, Reduction::Sum).item());
  // float32 inputs get the weights rounded to float32.
  Tensor x32 = x.to(DType::F32);
  CHECK(loss({x32, t}).item() == cross_entropy(x32, t, w.to(DType::F32), -100, Reduction::Sum).item());
}
