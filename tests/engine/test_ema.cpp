// ExponentialMovingAverage (engine/optim/ema.h) against torch.optim.swa_utils.AveragedModel
// with avg_fn = decay * avg + (1 - decay) * p (tests/fixtures/ema.txt, written by
// tests/fixtures/gen_lbfgs.py), plus apply/restore, checkpoint state and misuse.
#include <catch2/catch.hpp>

#include <memory>
#include <set>
#include <string>

#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "engine/optim/ema.h"
#include "tests/support/fixtures.h"

using namespace dl;

namespace {

// The fixture's model: Linear(3, 4) -> BatchNorm1d(4) -> ReLU -> Linear(4, 2), float64.
std::shared_ptr<nn::Sequential> make_model() {
  auto net = nn::sequential({std::make_shared<nn::Linear>(3, 4), std::make_shared<nn::BatchNorm1d>(4),
                             std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(4, 2)});
  net->to(DType::F64);
  return net;
}

// Loads the model's state after training step `s` of the fixture.
void load_step(nn::Module& model, const test::FixtureCase& c, int64_t s) {
  nn::StateDict sd;
  for (const auto& [k, t] : model.state_dict()) sd.emplace_back(k, c.t("model." + k + "." + std::to_string(s)));
  model.load_state_dict(sd);
}

const test::FixtureCase& ema_case() {
  static const std::vector<test::FixtureCase> cases = test::load_fixtures("ema.txt");
  return test::find_case(cases, "ema");
}

// Feeds the model states after the fixture's steps 0..n-1 to the average.
void update_through(optim::ExponentialMovingAverage& ema, nn::Module& model, int64_t n) {
  for (int64_t s = 0; s < n; ++s) {
    load_step(model, ema_case(), s);
    ema.update(model);
  }
}

}  // namespace

TEST_CASE("EMA: parameters averaged like AveragedModel(avg_fn=decay*avg+(1-decay)*p), buffers copied",
          "[optim][ema]") {
  const auto& c = ema_case();
  auto model = make_model();
  optim::ExponentialMovingAverage ema(*model, c.attr_f("decay"));
  std::set<std::string> params;
  for (const auto& [k, t] : model->named_parameters()) params.insert(k);
  for (int64_t s = 0; s < c.attr_i("steps"); ++s) {
    load_step(*model, c, s);  // the model after optimizer step s
    ema.update(*model);
    CHECK(ema.num_updates() == s + 1);
    for (const auto& [k, t] : ema.state_dict()) {
      INFO("step " << s << " " << k);
      if (params.count(k)) CHECK_CLOSE(t, c.t("avg." + k + "." + std::to_string(s)), 1e-12, 1e-15);
      else CHECK_CLOSE(t.to(DType::F64), c.t("model." + k + "." + std::to_string(s)).to(DType::F64), 0, 0);
    }
  }
  // The first update copied: after step 0 the average is the model itself.
  CHECK_CLOSE(c.t("avg.0.weight.0"), c.t("model.0.weight.0"), 0, 0);
}

TEST_CASE("EMA: apply_to/restore swap the averaged and training weights without copying", "[optim][ema]") {
  const auto& c = ema_case();
  auto model = make_model();
  optim::ExponentialMovingAverage ema(*model, 0.5);
  update_through(ema, *model, 2);
  load_step(*model, c, 2);  // training weights now differ from the average
  auto lin = std::dynamic_pointer_cast<nn::Linear>(model->child("0"));
  Tensor w = lin->weight;
  const Tensor training = w.detach().clone();
  const Tensor averaged = ema.state_dict()[0].second.clone();
  const void* avg_data = ema.state_dict()[0].second.raw_data();
  const void* train_data = w.raw_data();
  REQUIRE_FALSE(test::allclose(training, averaged, 0, 0));

  ema.apply_to(*model);
  CHECK(ema.applied());
  CHECK(lin->weight.same(w));            // the same tensor (optimizers keep theirs)
  CHECK(w.raw_data() == avg_data);       // the average's storage, not a copy
  CHECK_CLOSE(w, averaged, 0, 0);
  CHECK_CLOSE(ema.state_dict()[0].second, averaged, 0, 0);  // state_dict: still the average
  Tensor y = model->forward(ones({2, 3}, DType::F64));  // evaluates with the average
  CHECK(y.shape() == Shape{2, 2});
  CHECK_THROWS_WITH(ema.update(*model), Catch::Contains("call restore first"));
  CHECK_THROWS_WITH(ema.apply_to(*model), Catch::Contains("already applied"));

  ema.restore(*model);
  CHECK_FALSE(ema.applied());
  CHECK(w.raw_data() == train_data);
  CHECK_CLOSE(w, training, 0, 0);
  CHECK_CLOSE(ema.state_dict()[0].second, averaged, 0, 0);
  CHECK_THROWS_WITH(ema.restore(*model), Catch::Contains("not applied"));
}

TEST_CASE("EMA: state_dict/load_state_dict round-trip and continue identically, misuse is refused",
          "[optim][ema]") {
  const auto& c = ema_case();
  auto model = make_model();
  optim::ExponentialMovingAverage a(*model, 0.9);
  update_through(a, *model, 2);

  optim::ExponentialMovingAverage b(*make_model(), 0.9);
  nn::StateDict saved;
  for (const auto& [k, t] : a.state_dict()) saved.emplace_back(k, t.clone());
  b.load_state_dict(saved, a.num_updates());
  CHECK(b.num_updates() == 2);
  load_step(*model, c, 2);
  a.update(*model);
  b.update(*model);  // not a first update: averages, does not copy
  for (size_t i = 0; i < a.state_dict().size(); ++i)
    CHECK_CLOSE(a.state_dict()[i].second, b.state_dict()[i].second, 0, 0);

  nn::StateDict missing(saved.begin() + 1, saved.end());
  CHECK_THROWS_WITH(b.load_state_dict(missing, 2), Catch::Contains("the state has no '0.weight'"));
  nn::StateDict extra = saved;
  extra.emplace_back("9.weight", zeros({1}));
  CHECK_THROWS_WITH(b.load_state_dict(extra, 2), Catch::Contains("unexpected key '9.weight'"));
  nn::StateDict bad = saved;
  bad[0].second = zeros({2, 2});
  CHECK_THROWS_WITH(b.load_state_dict(bad, 2), Catch::Contains("'0.weight' has shape [2, 2]"));
  CHECK_THROWS_WITH(b.load_state_dict(saved, -1), Catch::Contains("num_updates"));
  CHECK_THROWS_WITH(optim::ExponentialMovingAverage(*model, 1.5), Catch::Contains("decay must be in [0, 1]"));
  auto other = nn::sequential({std::make_shared<nn::Linear>(3, 4)});
  other->to(DType::F64);
  CHECK_THROWS_WITH(a.update(*other), Catch::Contains("the model has no '1.weight'"));
  auto f32 = nn::sequential({std::make_shared<nn::Linear>(3, 4), std::make_shared<nn::BatchNorm1d>(4),
                             std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(4, 2)});
  CHECK_THROWS_WITH(a.update(*f32), Catch::Contains("'0.weight' is [4, 3] float32"));
}
