// ctc_loss end to end (issue 14): the trainer's wiring (cli/run/setup.cpp build_loss: the
// model's [N, T, C] output time-major, the batch's padded targets and target_lengths, T as
// every input length) against F.ctc_loss (tests/fixtures/gen_ctc_wiring.py); training on a
// tiny fashion_strips set; sequence_accuracy (cli/run/evaluate.cpp) on hand-made outputs; the
// config/data errors of a CTC recipe without sequence targets.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "cli/run/evaluate.h"
#include "cli/run/setup.h"
#include "cli/run/trainer.h"
#include "configs/config.h"
#include "datasets/idx.h"
#include "engine/autograd/autograd.h"
#include "tests/support/fixtures.h"
#include "tests/support/tempdir.h"

using namespace dl;
using Catch::Contains;

namespace {

// M images [8, 4] of 4 classes: class k lights rows 2k and 2k + 1 of columns 0-2; a faint
// index-dependent pattern elsewhere, and column 3 dark (a gap that lets a per-column model
// separate neighbours of one class). train-/test- IDX pairs in `dir`.
void write_tiny_strips_data(const test::TempDir& dir, int64_t m) {
  constexpr int64_t H = 8, W = 4;
  for (const std::string prefix : {"train", "test"}) {
    std::vector<uint8_t> px(static_cast<size_t>(m * H * W)), lab(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      const int64_t k = i % 4;
      lab[static_cast<size_t>(i)] = static_cast<uint8_t>(k);
      for (int64_t r = 0; r < H; ++r)
        for (int64_t c = 0; c < W; ++c)
          px[static_cast<size_t>((i * H + r) * W + c)] = static_cast<uint8_t>(c == W - 1 ? 0 : r / 2 == k ? 200 : (i * 7 + c) % 30);
    }
    data::write_idx_u8((dir.path / (prefix + "-images.idx")).string(), {m, H, W}, px.data(), true);
    data::write_idx_u8((dir.path / (prefix + "-labels.idx")).string(), {m}, lab.data(), false);
  }
}

// A tiny CRNN-like recipe on those strips: columns as time steps (permute + flatten), a linear
// per step, 4 classes + blank 4.
std::string tiny_ctc_yaml(const std::string& root) {
  return "data:\n"
         "  format: fashion_strips\n"
         "  root: " + root + "\n"
         "  max_len: 3\n"
         "  train: {images: train-images.idx, labels: train-labels.idx, num_strips: 96}\n"
         "  test: {images: test-images.idx, labels: test-labels.idx, num_strips: 32}\n"
         "  val_size: 32\n"
         "  transforms: [{type: to_float, scale: 0.00392156862745098}]\n"
         "  loader: {batch_size: 16, shuffle: true}\n"
         "model:\n"
         "  layers:\n"
         "    - {type: permute, dims: [0, 3, 1, 2]}\n"
         "    - {type: flatten, start_dim: 2}\n"
         "    - {type: linear, out_features: 16}\n"
         "    - {type: relu}\n"
         "    - {type: linear, out_features: 5}\n"
         "    - {type: log_softmax, dim: 2}\n"
         "loss: {type: ctc_loss, blank: 4, zero_infinity: true}\n"
         "optimizer: {type: adam, lr: 0.03}\n"
         "train: {epochs: 40, log_every: 100, eval_every: epoch, seed: 0, device: cpu, threads: 1}\n"
         "metrics: [sequence_accuracy]\n"
         "checkpoint: {best: {metric: val/sequence_accuracy}}\n";
}

LossSpec ctc_spec(const test::FixtureCase& c) {
  LossSpec s;
  s.type = "ctc_loss";
  s.attrs = {{"blank", c.attr_i("blank")}, {"reduction", c.attr("reduction")},
             {"zero_infinity", c.attr_i("zero_infinity") != 0}};
  return s;
}

}  // namespace

TEST_CASE("ctc_loss in the trainer equals F.ctc_loss on the time-major output, with its gradient",
          "[ctc][loss][train]") {
  const auto cases = test::load_fixtures("ctc_wiring.txt");
  REQUIRE(cases.size() == 4);
  for (const auto& c : cases) {
    INFO("case " << c.name);
    const train::LossFn fn = train::build_loss(ctc_spec(c));
    Tensor out = c.t("out").detach().requires_grad_();
    const train::LossLabels y(c.t("targets"), c.has("target_lengths") ? c.t("target_lengths") : Tensor());
    Tensor loss = fn({out}, y);
    CHECK_CLOSE(loss, c.t("y"), 1e-5, 1e-5);
    loss.backward();
    CHECK_CLOSE(out.grad(), c.t("gout"), 1e-4, 1e-6);
  }
}

TEST_CASE("ctc_loss in the trainer refuses outputs and targets of the wrong form", "[ctc][loss][train][errors]") {
  LossSpec s;
  s.type = "ctc_loss";
  s.attrs = {{"blank", int64_t{0}}, {"reduction", std::string("mean")}, {"zero_infinity", false}};
  const train::LossFn fn = train::build_loss(s);
  const Tensor out = zeros({2, 5, 3});
  CHECK_THROWS_WITH(fn({zeros({2, 3})}, from_vector<int64_t>({1, 2}, {2})), Contains("[N, T, C]"));
  CHECK_THROWS_WITH(fn({out}, from_vector<int64_t>({1, 2}, {2})), Contains("padded label sequences i64 [N, S]") &&
                                                                   Contains("fashion_strips"));
  s.inputs = {"a", "b"};
  CHECK_THROWS_WITH(train::build_loss(s), Contains("takes 1 model output"));
}

TEST_CASE("sequence_accuracy: greedy CTC decoding of hand-made outputs against the labels", "[ctc][metrics]") {
  // N = 4, T = 5, C = 3 (blank 0). Best paths: [1 1 0 2 0] -> 1 2; [2 0 2 2 0] -> 2 2;
  // [0 0 0 0 0] -> (empty); [1 2 1 0 0] -> 1 2 1.
  const std::vector<std::vector<int64_t>> best = {{1, 1, 0, 2, 0}, {2, 0, 2, 2, 0}, {0, 0, 0, 0, 0}, {1, 2, 1, 0, 0}};
  std::vector<float> lp(4 * 5 * 3, std::log(0.1f));
  for (size_t b = 0; b < 4; ++b)
    for (size_t t = 0; t < 5; ++t) lp[(b * 5 + t) * 3 + static_cast<size_t>(best[b][t])] = std::log(0.8f);
  const Tensor out = from_vector(lp, {4, 5, 3});
  // Padded targets [4, 3] (padding 9); lengths 2, 2, 1, 2: samples 0 and 1 right, 2 (wants [1])
  // and 3 (decodes 1 2 1, wants 1 2) wrong.
  const Tensor targets = from_vector<int64_t>({1, 2, 9, 2, 2, 9, 1, 9, 9, 1, 2, 9}, {4, 3});
  CHECK(train::count_sequences_right(out, targets, from_vector<int64_t>({2, 2, 1, 2}, {4}), 0) == 2);
  // Lengths 2, 2, 0, 3: sample 2 decodes to nothing and wants nothing (right); sample 3 wants
  // 1 2 9, not 1 2 1.
  CHECK(train::count_sequences_right(out, targets, from_vector<int64_t>({2, 2, 0, 3}, {4}), 0) == 3);
  // No lengths: every target is all 3 labels, none matches.
  CHECK(train::count_sequences_right(out, targets, Tensor(), 0) == 0);
  CHECK_THROWS_WITH(train::count_sequences_right(zeros({4, 3}), targets, Tensor(), 0), Contains("[N, T, C]"));

  train::EvalResult r;
  r.sequence = true;
  r.sequence_accuracy = 0.5;
  CHECK(train::metric_value(r, "sequence_accuracy") == 0.5);
  CHECK_FALSE(train::metric_value(r, "accuracy"));
}

TEST_CASE("ctc_loss trains a tiny CRNN-like recipe on fashion_strips: loss falls, sequences decode",
          "[ctc][train][strips]") {
  test::TempDir dir;
  write_tiny_strips_data(dir, 64);
  Config cfg = load_config_string(tiny_ctc_yaml(dir.path.string()), "tiny_ctc.yaml");
  train::RunOptions opt;
  opt.write_outputs = false;
  opt.mode = exporters::ProgressReporter::Mode::quiet;
  train::Trainer trainer(cfg, opt);
  const train::RunResult r = trainer.run();
  REQUIRE(r.losses.size() == 40 * 4);  // 96 - 32 val strips = 64 -> 4 batches per epoch
  for (double l : r.losses) CHECK(std::isfinite(l));
  const double first = (r.losses[0] + r.losses[1]) / 2, last = (r.losses[158] + r.losses[159]) / 2;
  INFO("first " << first << " last " << last);
  CHECK(last < 0.2 * first);
  REQUIRE(r.test);
  REQUIRE(r.test->sequence_accuracy);
  CHECK(r.test->sequence);
  CHECK(*r.test->sequence_accuracy > 0.8);
  CHECK(train::metric_value(*r.test, "sequence_accuracy") == r.test->sequence_accuracy);
}

TEST_CASE("a ctc_loss recipe on data without sequence targets is a config error naming the fix",
          "[ctc][train][errors]") {
  test::TempDir dir;
  write_tiny_strips_data(dir, 16);
  const Config cfg = load_config_string(tiny_ctc_yaml(dir.path.string()), "tiny_ctc.yaml");
  data::DatasetInfo info;
  info.target_kind = data::TargetKind::class_index;
  CHECK_THROWS_AS(train::check_loss_data(cfg, info), ConfigError);
  CHECK_THROWS_WITH(train::check_loss_data(cfg, info),
                    Contains("ctc_loss") && Contains("class_index") && Contains("fashion_strips"));
  info.target_kind = data::TargetKind::sequence;
  CHECK_NOTHROW(train::check_loss_data(cfg, info));
  // The sequence data itself passes through peek_data and open_data.
  CHECK(train::peek_data(cfg).target_kind == data::TargetKind::sequence);
  // configs: loss.inputs names one node for a sequence loss.
  std::string yaml = tiny_ctc_yaml(dir.path.string());
  const std::string loss = "loss: {type: ctc_loss, blank: 4, zero_infinity: true}";
  yaml.replace(yaml.find(loss), loss.size(), "loss: {type: ctc_loss, blank: 4, inputs: [a, b]}");
  CHECK_THROWS_WITH(load_config_string(yaml, "tiny_ctc.yaml"),
                    Contains("expected 1 model node name(s) for ctc_loss's log_probs"));
}
