// engine/train/step.h: the training step the CLI's loop drives (accumulation, clipping,
// closures, hooks).
#include <catch2/catch.hpp>

#include <cmath>

#include "engine/autograd/autograd.h"
#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "engine/optim/optim.h"
#include "engine/tensor/host_reads.h"
#include "engine/train/step.h"

using namespace dl;

namespace {

struct Net {
  std::shared_ptr<nn::Sequential> model;
  explicit Net(uint64_t seed) {
    Generator g(seed);
    model = std::make_shared<nn::Sequential>();
    model->push_back(std::make_shared<nn::Linear>(4, 8, true, g));
    model->push_back(std::make_shared<nn::Tanh>());
    model->push_back(std::make_shared<nn::Linear>(8, 3, true, g));
    model->to(DType::F64);
  }
};

std::vector<double> flat(nn::Module& m) {
  std::vector<double> out;
  for (auto& [name, p] : m.named_parameters())
    for (double v : p.detach().contiguous().to_vector<double>()) out.push_back(v);
  return out;
}

Tensor rows(const Tensor& t, int64_t begin, int64_t end) { return t.narrow(0, begin, end - begin).contiguous(); }

}  // namespace

TEST_CASE("train step: accumulating k micro-batches equals one batch k times larger", "[train][step]") {
  Generator g(5);
  Tensor x = randn({8, 4}, g, DType::F64), y = from_vector(std::vector<int64_t>{0, 1, 2, 0, 1, 2, 2, 1}, {8});
  Net big(1), small(1);
  auto opt_big = optim::make_optimizer("sgd", big.model->named_parameters(), {{"lr", 0.1}, {"momentum", 0.9}});
  auto opt_small = optim::make_optimizer("sgd", small.model->named_parameters(), {{"lr", 0.1}, {"momentum", 0.9}});
  train::TrainStep one(*opt_big), acc(*opt_small, {.accumulate_steps = 2});
  for (int step = 0; step < 4; ++step) {
    auto r = one.run([&] { return cross_entropy(big.model->forward(x), y); });
    CHECK(r.updated);
    auto r1 = acc.run([&] { return cross_entropy(small.model->forward(rows(x, 0, 4)), rows(y, 0, 4)); });
    CHECK_FALSE(r1.updated);
    CHECK(acc.pending_micro_batches() == 1);
    auto r2 = acc.run([&] { return cross_entropy(small.model->forward(rows(x, 4, 8)), rows(y, 4, 8)); });
    CHECK(r2.updated);
    CHECK((r1.loss + r2.loss) / 2 == Approx(r.loss).epsilon(1e-12));
  }
  auto a = flat(*big.model), b = flat(*small.model);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(b[i] == Approx(a[i]).epsilon(1e-12));
  // A window cut short (end of epoch) still updates, once.
  acc.run([&] { return cross_entropy(small.model->forward(rows(x, 0, 4)), rows(y, 0, 4)); });
  CHECK(acc.flush());
  CHECK_FALSE(acc.flush());
}

TEST_CASE("train step: clipping happens between backward and the update, hooks in order", "[train][step][clip]") {
  Generator g(9);
  Tensor x = randn({6, 4}, g, DType::F64), y = from_vector(std::vector<int64_t>{0, 1, 2, 0, 1, 2}, {6});
  Net a(2), b(2);
  auto opt_a = optim::make_optimizer("sgd", a.model->named_parameters(), {{"lr", 0.5}});
  auto opt_b = optim::make_optimizer("sgd", b.model->named_parameters(), {{"lr", 0.5}});
  train::TrainStep clipped(*opt_a, {.clip_grad_norm = 0.05});
  std::vector<std::string> events;
  clipped.add_before_update([&] { events.push_back("before"); });
  clipped.add_after_update([&] { events.push_back("after"); });
  auto r = clipped.run([&] { return cross_entropy(a.model->forward(x), y); });
  REQUIRE(r.grad_norm);
  CHECK(events == std::vector<std::string>{"before", "after"});
  // By hand: backward, clip_grad_norm_, step.
  Tensor l = cross_entropy(b.model->forward(x), y);
  l.backward();
  std::vector<Tensor> ps;
  for (auto& [n, p] : b.model->named_parameters()) ps.push_back(p);
  const double norm = optim::clip_grad_norm_(ps, 0.05);
  opt_b->step();
  CHECK(*r.grad_norm == Approx(norm).epsilon(1e-12));
  CHECK(norm > 0.05);  // the clip did something
  CHECK(flat(*a.model) == flat(*b.model));
  for (auto& [n, p] : a.model->named_parameters()) CHECK_FALSE(p.grad().defined());  // zeroed after the update

  // clip_grad_value clamps every element before the update, as clip_grad_value_ by hand.
  Net c(3), d(3);
  auto opt_c = optim::make_optimizer("sgd", c.model->named_parameters(), {{"lr", 1.0}});
  auto opt_d = optim::make_optimizer("sgd", d.model->named_parameters(), {{"lr", 1.0}});
  const std::vector<double> before = flat(*c.model);
  train::TrainStep by_value(*opt_c, {.clip_grad_value = 1e-3});
  by_value.run([&] { return cross_entropy(c.model->forward(x), y); });
  cross_entropy(d.model->forward(x), y).backward();
  std::vector<Tensor> qs;
  for (auto& [nm, p] : d.model->named_parameters()) qs.push_back(p);
  optim::clip_grad_value_(qs, 1e-3);
  opt_d->step();
  const std::vector<double> after = flat(*c.model);
  CHECK(after == flat(*d.model));
  double biggest = 0;
  for (size_t i = 0; i < after.size(); ++i) biggest = std::max(biggest, std::abs(after[i] - before[i]));
  CHECK(biggest == Approx(1e-3));
}

TEST_CASE("train step: closure optimizers re-evaluate the batch, bad options are refused", "[train][step][lbfgs]") {
  Generator g(4);
  Tensor x = randn({6, 4}, g, DType::F64), y = from_vector(std::vector<int64_t>{0, 1, 2, 0, 1, 2}, {6});
  Net n(6);
  auto lbfgs = optim::make_optimizer("lbfgs", n.model->named_parameters(), {{"max_iter", 5.0}});
  int calls = 0;
  train::TrainStep step(*lbfgs);
  double first = 0, last = 0;
  for (int i = 0; i < 3; ++i) {
    auto r = step.run([&] {
      ++calls;
      return cross_entropy(n.model->forward(x), y);
    });
    CHECK(r.updated);
    if (i == 0) first = r.loss;
    last = r.loss;
  }
  CHECK(calls > 3);  // several evaluations per step
  CHECK(last < first);
  CHECK_THROWS_WITH(train::TrainStep(*lbfgs, {.accumulate_steps = 2}), Catch::Contains("accumulate"));
  auto sgd = optim::make_optimizer("sgd", n.model->named_parameters(), {{"lr", 0.1}});
  CHECK_THROWS_WITH(train::TrainStep(*sgd, {.accumulate_steps = 0}), Catch::Contains(">= 1"));
  CHECK_THROWS(train::TrainStep(*sgd, {.clip_grad_norm = -1}));
}

TEST_CASE("train step: defer_host_reads reads nothing back and gives the same numbers", "[train][step][host_reads]") {
  // Accumulation over 2 micro-batches and clipping by norm (which clips: max 0.05) in both runs.
  Generator g(11);
  Tensor x = randn({12, 4}, g, DType::F64);
  Tensor y = from_vector(std::vector<int64_t>{0, 1, 2, 0, 1, 2, 2, 1, 0, 0, 1, 2}, {12});
  auto run = [&](bool defer, std::vector<double>& losses, std::vector<double>& norms) {
    Net net(3);
    auto opt = optim::make_optimizer("sgd", net.model->named_parameters(), {{"lr", 0.1}, {"momentum", 0.9}});
    train::TrainStep step(*opt, {.accumulate_steps = 2, .clip_grad_norm = 0.05, .defer_host_reads = defer});
    std::vector<Tensor> loss_values, norm_values;
    const uint64_t reads = host_read_count();
    for (int64_t i = 0; i < 12; i += 2) {
      train::StepResult r = step.run([&] { return cross_entropy(net.model->forward(rows(x, i, i + 2)), rows(y, i, i + 2)); });
      REQUIRE(r.loss_value.defined());
      CHECK(r.loss_value.dim() == 0);
      loss_values.push_back(r.loss_value);
      CHECK(r.grad_norm_value.defined() == r.updated);
      if (r.updated) norm_values.push_back(r.grad_norm_value);
      CHECK(r.grad_norm.has_value() == (r.updated && !defer));
      if (!defer) CHECK(r.loss == r.loss_value.item());
    }
    if (defer) CHECK(host_read_count() == reads);  // not one read in 6 micro-batches and 3 updates
    for (const Tensor& t : loss_values) losses.push_back(t.item());
    for (const Tensor& t : norm_values) norms.push_back(t.item());
    CHECK(step.last_grad_norm().item() == norms.back());
    return flat(*net.model);
  };
  std::vector<double> l1, n1, l2, n2;
  const std::vector<double> w1 = run(false, l1, n1), w2 = run(true, l2, n2);
  CHECK(w1 == w2);
  CHECK(l1 == l2);
  CHECK(n1 == n2);
  REQUIRE(n1.size() == 3);
  CHECK(n1[0] > 0.05);  // the clipping was active
}

TEST_CASE("train step: deferred, a NaN loss is not caught by the step", "[train][step][host_reads]") {
  Net net(3);
  auto opt = optim::make_optimizer("sgd", net.model->named_parameters(), {{"lr", 0.1}});
  train::TrainStep step(*opt, {.defer_host_reads = true});
  Tensor x = full({2, 4}, NAN, TensorOptions(DType::F64));
  train::StepResult r = step.run([&] { return cross_entropy(net.model->forward(x), from_vector<int64_t>({0, 1}, {2})); });
  CHECK(r.updated);  // its update ran: the caller finds the NaN when it reads the loss
  CHECK(std::isnan(r.loss_value.item()));
  CHECK(std::isnan(flat(*net.model)[0]));
  // Without deferral the step reads the loss and stops before backward.
  Net net2(3);
  auto opt2 = optim::make_optimizer("sgd", net2.model->named_parameters(), {{"lr", 0.1}});
  train::TrainStep step2(*opt2);
  train::StepResult r2 = step2.run([&] { return cross_entropy(net2.model->forward(x), from_vector<int64_t>({0, 1}, {2})); });
  CHECK(std::isnan(r2.loss));
  CHECK_FALSE(r2.updated);
  CHECK(flat(*net2.model) == flat(*Net(3).model));
}
