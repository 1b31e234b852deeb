// Metric learning in the CLI loop: in-batch triplet mining for triplet_margin_loss without
// `loss.inputs` (cli/run/setup.h mine_triplets, build_loss), the knn_accuracy metric
// (cli/run/evaluate.h) and recipes/fashion_mnist/triplet.yaml trained for 20 steps.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <random>
#include <sstream>

#include "cli/run/evaluate.h"
#include "cli/run/setup.h"
#include "cli/run/trainer.h"
#include "configs/config.h"
#include "engine/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/tempdir.h"

using namespace dl;

namespace {

// The loss spec of triplet_margin_loss as a config resolves it (defaults filled).
LossSpec triplet_spec() {
  Config c = load_config_string(
      "model: {layers: [flatten, {type: linear, out_features: 4}]}\n"
      "data: {dataset: fashion_mnist}\n"
      "loss: {type: triplet_margin_loss, margin: 1.0}\n",
      "inline.yaml");
  return c.loss;
}

// Leave-one-out 1-NN accuracy the obvious way, in double (the oracle of knn_accuracy).
double naive_knn(const std::vector<double>& x, int64_t n, int64_t d, const std::vector<int64_t>& labels) {
  int64_t hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = -1;
    double best_d = 0;
    for (int64_t j = 0; j < n; ++j) {
      if (j == i) continue;
      double s = 0;
      for (int64_t k = 0; k < d; ++k) s += (x[i * d + k] - x[j * d + k]) * (x[i * d + k] - x[j * d + k]);
      if (best < 0 || s < best_d) {
        best = j;
        best_d = s;
      }
    }
    hits += labels[best] == labels[i];
  }
  return static_cast<double>(hits) / static_cast<double>(n);
}

}  // namespace

TEST_CASE("triplet: in-batch mining takes the next same-label and the next other-label sample", "[triplet]") {
  // Labels 2 and 3 (rows 3 and 6) occur once: those anchors have no positive and are skipped;
  // row 2 wraps around to row 0 for its positive, row 5 to row 1.
  train::Triplets t = train::mine_triplets({0, 1, 0, 2, 1, 1, 3});
  CHECK(t.anchor == std::vector<int64_t>{0, 1, 2, 4, 5});
  CHECK(t.positive == std::vector<int64_t>{2, 4, 0, 5, 1});
  CHECK(t.negative == std::vector<int64_t>{1, 2, 3, 6, 6});

  CHECK(train::mine_triplets({4, 4, 4}).anchor.empty());   // no negative
  CHECK(train::mine_triplets({0, 1, 2}).anchor.empty());   // no positive
  CHECK(train::mine_triplets({}).anchor.empty());
}

TEST_CASE("triplet: build_loss trains triplet_margin_loss on the mined rows", "[triplet]") {
  const std::vector<int64_t> lab = {0, 1, 0, 2, 1, 1, 3};
  Generator gen(7);
  Tensor out = randn({7, 3}, gen).requires_grad_();
  Tensor labels = from_vector(lab, {7});
  train::LossFn fn = train::build_loss(triplet_spec());
  Tensor loss = fn({out}, labels);

  // The same loss written out by hand, on a copy of the output, with its gradient.
  Tensor ref = out.detach().clone().requires_grad_();
  auto rows = [&](std::vector<int64_t> idx) {
    return index_select(ref, 0, from_vector(idx, {static_cast<int64_t>(idx.size())}));
  };
  Tensor expected = triplet_margin_loss(rows({0, 1, 2, 4, 5}), rows({2, 4, 0, 5, 1}), rows({1, 2, 3, 6, 6}), 1.0);
  CHECK(loss.item() == Approx(expected.item()).epsilon(1e-6));
  CHECK(loss.item() > 0);

  // The gradient reaches the output rows through the selection (row 6, a negative twice, sums).
  loss.backward();
  expected.backward();
  std::vector<float> g = out.grad().to_vector<float>(), want = ref.grad().to_vector<float>();
  REQUIRE(g.size() == 21);
  for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] == Approx(want[i]).margin(1e-7));
  float total = 0;
  for (float v : g) total += std::abs(v);
  CHECK(total > 0);
}

TEST_CASE("triplet: a batch without a triplet is an error naming the fix", "[triplet]") {
  train::LossFn fn = train::build_loss(triplet_spec());
  Tensor out = zeros({3, 2});
  try {
    fn({out}, from_vector(std::vector<int64_t>{0, 1, 2}, {3}));
    FAIL("expected an error");
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    CHECK(msg.find("triplet_margin_loss") != std::string::npos);
    CHECK(msg.find("no triplet") != std::string::npos);
    CHECK(msg.find("data.loader.batch_size") != std::string::npos);
  }
}

TEST_CASE("triplet: knn_accuracy on a hand-made embedding set", "[triplet]") {
  // 0,1: a class-0 pair; 2,3: a class-1 pair; row 4 (class 1) is exactly between rows 0 and 2
  // and takes the lower index (0: a miss); row 5 (class 1) lies nearest to row 1 (a miss).
  Tensor e = from_vector(std::vector<float>{0, 0, 0, 1, 10, 0, 10, 1.5f, 5, 0, 0, 3}, {6, 2});
  CHECK(train::knn_accuracy(e, {0, 0, 1, 1, 1, 1}) == Approx(4.0 / 6.0));
  CHECK(train::knn_accuracy(e, {0, 0, 1, 1, 0, 0}) == Approx(1.0));
  CHECK(std::isnan(train::knn_accuracy(e.narrow(0, 0, 1), {0})));
  CHECK_THROWS_AS(train::knn_accuracy(e, {0, 1}), std::invalid_argument);
}

TEST_CASE("triplet: knn_accuracy over several row chunks equals the naive double computation", "[triplet]") {
  // 3000 rows: blocks of (1 << 22) / 3000 = 1398 rows, so three chunks incl. a short last one.
  const int64_t n = 3000, d = 4;
  std::mt19937 rng(3);
  std::normal_distribution<double> normal;
  std::vector<double> x(static_cast<size_t>(n * d));
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = static_cast<int64_t>(rng() % 5);
    for (int64_t k = 0; k < d; ++k) x[i * d + k] = normal(rng) + (k == 0 ? 1.5 * static_cast<double>(labels[i]) : 0.0);
  }
  std::vector<float> xf(x.begin(), x.end());
  x.assign(xf.begin(), xf.end());  // the oracle sees the same float values
  const double got = train::knn_accuracy(from_vector(xf, {n, d}), labels);
  CHECK(got == Approx(naive_knn(x, n, d, labels)).margin(1e-12));
  CHECK(got > 0.3);  // the classes are separable along the first axis, so better than chance
}

TEST_CASE("triplet: knn_accuracy is a metric name for logs and checkpoint.best", "[triplet]") {
  Config c = load_config_string(
      "model: {layers: [flatten, {type: linear, out_features: 4}]}\n"
      "data: {dataset: fashion_mnist, val_size: 100}\n"
      "metrics: [knn_accuracy, top3]\n"
      "checkpoint: {best: {metric: val/knn_accuracy}}\n",
      "inline.yaml");
  REQUIRE(c.metrics.size() == 2);
  CHECK(c.metrics[0].name() == "knn_accuracy");
  CHECK(c.metrics[1].name() == "top3");
  CHECK(train::eval_options(c, "val", 10).knn);
  train::EvalResult r;
  r.knn_accuracy = 0.75;
  CHECK(train::metric_value(r, "knn_accuracy") == 0.75);
  CHECK_FALSE(train::metric_value(r, "top5").has_value());
  // The resolved config round-trips.
  CHECK(load_config_string(c.resolved_yaml, "resolved.yaml").metrics == c.metrics);
}

TEST_CASE("triplet: the recipe trains 20 steps with a falling loss and logs knn_accuracy", "[triplet][recipes]") {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    WARN("Fashion-MNIST not installed (scripts/setup.sh installs dataset-fashion-mnist): skipped");
    return;
  }
  test::TempDir dir;
  Config cfg = load_config(test::source_path("recipes/fashion_mnist/triplet.yaml"),
                           {"train.max_steps=20", "train.log_every=100", "data.loader.prefetch=0",
                            "data.val_size=1000"});
  train::RunOptions opt;
  opt.run_dir = (dir.path / "run").string();
  opt.mode = exporters::ProgressReporter::Mode::quiet;
  opt.handle_signals = false;
  train::Trainer trainer(cfg, opt);
  train::RunResult r = trainer.run();
  REQUIRE(r.losses.size() == 20);
  for (double l : r.losses) CHECK(std::isfinite(l));
  double first = 0, last = 0;
  for (size_t i = 0; i < 5; ++i) first += r.losses[i], last += r.losses[15 + i];
  CHECK(last < first);
  REQUIRE(r.test);
  REQUIRE(r.test->knn_accuracy);
  CHECK(*r.test->knn_accuracy > 0.5);  // 20 steps already cluster the classes well above chance (0.1)
  const std::string log = test::read_file((dir.path / "run" / "metrics.jsonl").string());
  CHECK(log.find("\"split\":\"test\"") != std::string::npos);
  CHECK(log.find("\"knn_accuracy\":") != std::string::npos);
}
